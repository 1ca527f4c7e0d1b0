# The README's two commands: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
PIP     = $(PY) -m pip --disable-pip-version-check -q

.PHONY: run test lint kitlint pytest wheel bench clean venv-test

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

test: lint kitlint pytest

wheel: $(VENV)/.created
	$(PIP) install build
	$(PY) -m build --wheel --outdir dist .

bench: venv-test
	$(PY) bench/chain.py
	$(PY) bench/engine.py

clean:
	rm -rf $(VENV) build dist var .pytest_cache .ruff_cache test-artifacts
