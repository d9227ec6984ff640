"""What the CLI and the Python API call: plan (core), build (workflows), execute."""
