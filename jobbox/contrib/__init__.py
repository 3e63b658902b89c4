"""Optional integrations of jobbox with other parts of a Django stack; each is an app of its
own, added to INSTALLED_APPS only by a project that uses it."""
