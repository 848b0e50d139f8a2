"""Secret resolution and scrubbing.

An agent (``Agent.secrets``) or a workflow document (``use.secrets``) names the secrets it
uses; the values live only on the runner, in its environment or in a dotenv-format secrets
file. Only declared names resolve, so a definition cannot read arbitrary runner
configuration, and every resolved value is scrubbed (:mod:`polyfleet.redaction`) from
anything the runner reports or logs.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from dotenv import dotenv_values

from polyfleet.redaction import Redactor
from runner.errors import SecretError

_REFERENCE = re.compile(r"\$\{([^}]*)\}")


def read_secrets_file(path: Path) -> dict[str, str]:
    """Read a dotenv-format secrets file; entries without a value are skipped.

    Raises:
        SecretError: The file cannot be read.

    """
    try:
        # Read here: dotenv_values(path) would quietly return nothing for a missing file,
        # and a configured file that is missing is a deployment error to report.
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise SecretError(f"cannot read the runner's secrets file {path}: {err.strerror}") from None
    values = dotenv_values(stream=io.StringIO(text))
    return {name: value for name, value in values.items() if value is not None}


class Secrets:
    """The secrets one agent or workflow execution may use on this runner.

    Values are looked up in ``environ`` first, then in ``file_values``: the environment
    wins, as it does for every other setting.
    """

    def __init__(
        self,
        declared: Iterable[str],
        environ: Mapping[str, str] | None = None,
        file_values: Mapping[str, str] | None = None,
    ) -> None:
        self._declared = frozenset(declared)
        self._values: dict[str, str] = {}
        for name in self._declared:
            value = (environ or {}).get(name)
            if value is None:
                value = (file_values or {}).get(name)
            if value is not None:
                self._values[name] = value
        self._redactor = Redactor(self._values.values())

    @classmethod
    def load(
        cls, declared: Iterable[str], *, use_environment: bool, secrets_file: Path | None
    ) -> Secrets:
        """Resolve ``declared`` from the process environment and the secrets file.

        The file is read on every call, so a rotated value is used by the next
        execution without a restart; definitions that declare no secrets skip it.
        """
        names = list(declared)
        if not names:
            return cls([])
        file_values = read_secrets_file(secrets_file) if secrets_file else {}
        return cls(names, dict(os.environ) if use_environment else {}, file_values)

    def get(self, name: str, *, purpose: str) -> str:
        """The value of secret ``name``.

        Args:
            name: The secret's name.
            purpose: Where it is used, for the error message (e.g. ``model.api_key_secret``).

        Raises:
            SecretError: ``name`` is not among the agent's secrets or has no value here.

        """
        if name not in self._declared:
            raise SecretError(
                f"{purpose} refers to secret '{name}', which the agent does not declare "
                "in its secrets"
            )
        value = self._values.get(name)
        if value is None:
            raise SecretError(
                f"secret '{name}' ({purpose}) has no value on this runner: set it in the "
                "runner's environment or its secrets file (POLYFLEET_RUNNER_SECRETS_FILE)"
            )
        return value

    def expand(self, text: str, *, purpose: str) -> str:
        """Replace every ``${NAME}`` in ``text`` by the value of secret ``NAME``.

        Raises:
            SecretError: A reference names an undeclared or missing secret.

        """
        return _REFERENCE.sub(lambda m: self.get(m.group(1), purpose=purpose), text)

    def resolved(self) -> dict[str, str]:
        """The declared secrets that have a value on this runner, by name."""
        return dict(self._values)

    @property
    def redactor(self) -> Redactor:
        """The redactor of these secrets' values (``ProgressReporter.redactor`` takes it)."""
        return self._redactor

    def scrub(self, text: str) -> str:
        """``text`` with every secret value redacted (see :mod:`polyfleet.redaction`)."""
        return self._redactor.text(text)
