# The README's two commands: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
PIP     = $(PY) -m pip --disable-pip-version-check -q

.PHONY: run test lint kitlint pytest molecule molecule-if-usable drills wheel fuzz bench clean venv-test

$(VENV)/.created:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	touch $@

# Installed from the wheel (not editable): what runs is what ships, static files included.
run: $(VENV)/.created
	$(PIP) install .
	$(VENV)/bin/etckit dev

venv-test: $(VENV)/.created
	$(PIP) install '.[test]'
	$(PIP) install --no-deps --force-reinstall .

lint: venv-test
	$(VENV)/bin/ruff check .

# The deployment kit: yamllint, ansible-lint (production profile, offline) and a syntax check
# of every playbook. Its pytest tests are tests/kit/.
kitlint: venv-test
	$(VENV)/bin/yamllint --strict .
	PATH="$(abspath $(VENV))/bin:$$PATH" ANSIBLE_CONFIG=ansible.cfg $(VENV)/bin/ansible-lint -q
	ANSIBLE_CONFIG=ansible.cfg $(VENV)/bin/ansible-playbook --syntax-check playbooks/*.yml

pytest: venv-test
	$(VENV)/bin/pytest

# Molecule: the roles and the whole site deployed to systemd containers under rootful podman
# (molecule/, images/build). `make molecule` requires podman; `make molecule-if-usable` skips
# with the reason when podman is missing (with CI=true it fails instead). Times per scenario:
# test-artifacts/molecule-times.txt. `make test` runs them last (molecule-if-usable).
molecule: venv-test
	MOLECULE_REQUIRED=1 VENV=$(VENV) tests/molecule/run

molecule-if-usable: venv-test
	VENV=$(VENV) tests/molecule/run

# The topology scenario alone: the site, its client and the operations drills
# (docs/operations.md "Drills"), about 20 minutes on the 2-core test machine.
drills: venv-test
	MOLECULE_REQUIRED=1 VENV=$(VENV) tests/molecule/run topology

test: lint kitlint pytest molecule-if-usable

wheel: $(VENV)/.created
	$(PIP) install build
	$(PY) -m build --wheel --outdir dist .

# Exploratory fuzzing of the whole chain: new random messages each run (the suite replays
# fixed seeds). FUZZ_MESSAGES=50000 make fuzz for a longer one.
fuzz: venv-test
	FUZZ_RANDOM=1 $(VENV)/bin/pytest -q tests/test_fuzz_chain.py -k hostile

bench: venv-test
	$(PY) bench/chain.py
	$(PY) bench/engine.py
	$(PY) bench/fairness.py

clean:
	rm -rf $(VENV) build dist var .pytest_cache .ruff_cache test-artifacts
