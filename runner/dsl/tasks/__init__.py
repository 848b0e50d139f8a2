"""Task executors; importing this package registers them all with :mod:`runner.dsl.flow`."""

import runner.dsl.tasks.agent
import runner.dsl.tasks.basic
import runner.dsl.tasks.composite
import runner.dsl.tasks.fork
import runner.dsl.tasks.http
import runner.dsl.tasks.try_catch  # noqa: F401 - imported for their registrations
