.PHONY: setup demo test

# Install the pinned test tooling (moto server, cargo-lambda, SAM CLI, cfn-lint, the analysers) into .venv*.
setup:
	scripts/setup.sh

# Run the function's main job locally against the local IoT endpoint with the sample event.
demo:
	scripts/demo.sh

# The whole test suite (what CI runs).
test:
	scripts/test.sh
