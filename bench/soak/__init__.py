"""The soak: the real stack on private servers, faults on a schedule, every answer recorded,
then a checker over the whole history (docs/how-to/soak.md). `make soak MINUTES=n`."""
