"""jobbox's HTTP surface: every view (`views`), their routes (`urls`), and the 503 of an
unreachable database (`errors`)."""
