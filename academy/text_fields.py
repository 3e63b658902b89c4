"""Text a client sends is checked before it is stored (docs/explanation/invariants.md,
invariant 10: a NUL byte in a video title was a 500 on PostgreSQL).

PostgreSQL refuses a NUL in any text column (a 500 if it gets that far); other control
characters and lone surrogates have no business in a title or a job type either and would
reach logs and pages as they are. A field holding any of them is a 400 with a plain message.
"""

import unicodedata

# Unicode categories refused: Cc (controls: NUL, C0, DEL, C1) and Cs (lone surrogates, which
# no encoder writes). Format characters (Cf, e.g. the joiners inside emoji) are text.
REFUSED_CATEGORIES = frozenset({"Cc", "Cs"})


def control_character_problem(field: str, value: str) -> str | None:
    """A message naming `field` if `value` holds a refused character, else None."""
    for char in value:
        if unicodedata.category(char) in REFUSED_CATEGORIES:
            return (f"The field `{field}` contains a control character "
                    f"(U+{ord(char):04X}); send plain text.")
    return None
