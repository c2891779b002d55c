"""Each command's output rows (Docker's formatter contexts), built on hyperctl.formatting."""
