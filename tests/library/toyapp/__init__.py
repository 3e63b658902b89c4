"""A toy project's app: one tracked model, registered with jobbox as an adopter would."""
