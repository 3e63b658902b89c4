"""Jobbox: status and progress of long-running jobs served from Redis, the database as the record.

See DESIGN.md ("The three parts"). Import the parts from their modules (`jobbox.writers`,
`jobbox.readers`, ...); nothing here connects or touches Django at import time.
"""

