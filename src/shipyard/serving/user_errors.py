"""The one rule for exceptions raised by the user's code, for every bundle kind and protocol.

The user's code is a ``score.py``'s ``run()`` or an MLflow model's ``predict()``. Input the
server checks itself (the body, the manifest signature, inference-schema decorators, MLflow's
schema enforcement) is answered before or around that code (``validation``). What the code
itself raises is answered by type:

- ``ValueError`` (with its subclasses, such as ``json.JSONDecodeError`` and
  ``UnicodeDecodeError``) and ``OverflowError``: the code refused the values it was given, so the
  caller is at fault: 422 ``invalid_input`` at ``/score`` and the V2 routes, 400 ``BAD_REQUEST`` at
  ``/invocations``, with the exception's message. This is Python's own meaning of ValueError
  (right type, wrong value), what numpy, pandas and scikit-learn raise on values they cannot take,
  and a signal a ``score.py`` can raise on purpose without importing Shipyard, so it runs unchanged
  on Azure ML.
- anything else (``TypeError``, ``KeyError``, ``RuntimeError``, an ``MlflowException`` that is not
  about the input, ...): a fault of the deployment, 500 with the request id; the traceback goes
  to the server log, never into the body.

Azure ML's inference server answers every exception from ``run()`` with 500 (a 4xx needs
``run()`` to return an ``AMLResponse``), MLflow's answers every exception from ``predict()`` with
400 and the stack trace in the body. Shipyard takes the middle road. Its cost: a ValueError from
a bug inside the model reads as the caller's fault, so every such answer is logged (warning) with
the file and line that raised it, and a script that means "my bug" should raise something else.
"""

from __future__ import annotations

import logging
import traceback

from shipyard.serving.printlog import REQUEST_ID
from shipyard.serving.validation import ScoringInputError

logger = logging.getLogger("shipyard.serving")

# What the user's code raises to say "these values cannot be scored".
INPUT_ERRORS: tuple[type[Exception], ...] = (ValueError, OverflowError)


class RejectedInputError(ScoringInputError):
    """The user's code refused the request's values (it raised ValueError or OverflowError)."""


def describe(exc: BaseException) -> str:
    """``Type: message`` (the type alone when the message is empty)."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def raised_at(exc: BaseException) -> str:
    """``file:line`` of the innermost frame that raised ``exc``."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "unknown"
    return f"{frames[-1].filename}:{frames[-1].lineno}"


def log_rejected(who: str, exc: BaseException) -> None:
    """One warning line for an input refused by the user's code, naming where it was raised
    (a ValueError from inside a library may be a bug rather than bad input)."""
    logger.warning(
        "%s refused the input (request_id=%s): %s (raised at %s)",
        who,
        REQUEST_ID.get(),
        describe(exc),
        raised_at(exc),
    )


def rejected_input(exc: BaseException) -> RejectedInputError:
    """A ValueError or OverflowError from ``run()`` as the input error the server answers 4xx."""
    log_rejected("run()", exc)
    return RejectedInputError(str(exc) or type(exc).__name__)


def failure_message(subject: str, exc: BaseException, request_id: str | None) -> str:
    """The message of a 500: what failed, how, and the request id under which the server log
    holds the traceback."""
    return f"{subject} failed: {describe(exc)} (request id {request_id}; the traceback is in the server log)"
