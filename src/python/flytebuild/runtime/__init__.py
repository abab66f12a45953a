"""Code that runs in the user's environment (flytekit); shipped into sandboxes as files, never imported by Pants."""
