"""The `modelops` CLI: `config`, `datasets`, `jobs`, `artifacts`, `models`, `quantize`, `eval`, `rag`, `market`,
`router`, `console`, `deploy` and `chat` commands over the SDK; every command but `chat` takes `--json`.

Exit codes: 0 ok; 1 user error (bad input, a 4xx answer, a job that failed or was cancelled under `jobs wait`);
2 server error (a 5xx answer, the gateway unreachable); 3 verification failed (`artifacts verify`). A deployment that
failed to load under `deploy create` is a user error (1)."""

from __future__ import annotations

import sys

from ..errors import ApiError, ConnectionFailed, VerificationFailed
from . import (  # noqa: F401 - quantize registers its command
    artifacts,
    console,
    datasets,
    deployments,
    evaluation,
    jobs,
    market,
    models,
    quantize,
    rag,
    router,
    usage,
)
from .app import app, err

OK, USER_ERROR, SERVER_ERROR, VERIFY_FAILED = 0, 1, 2, 3
USAGE_ERROR = 2  # what click exits with on a bad command line: ours is a user error, 1

app.add_typer(datasets.app, name="datasets")
app.add_typer(jobs.app, name="jobs")
app.add_typer(artifacts.app, name="artifacts")
app.add_typer(deployments.app, name="deploy")
app.add_typer(models.app, name="models")
app.add_typer(evaluation.app, name="eval")
app.add_typer(rag.app, name="rag")
app.add_typer(market.app, name="market")
app.add_typer(router.app, name="router")
app.add_typer(console.app, name="console")
app.add_typer(usage.app, name="usage")


def run(argv: list[str]) -> int:
    """Run one command line; its exit code."""
    try:
        app(argv, prog_name="modelops")
    except SystemExit as done:
        # Commands end with typer.Exit (0, 1 or 3); click itself prints and exits for --help and bad usage.
        code = done.code if isinstance(done.code, int) else USER_ERROR
        return USER_ERROR if code == USAGE_ERROR else code
    except ApiError as error:
        err.print(f"[red]error[/red] {error}" + (f" ({error.type})" if error.type != "about:blank" else ""))
        for name, value in error.extensions.items():
            if name != "hint":
                err.print(f"  {name}: {value}")
        err.print(f"  what to do: {error.hint}")
        return USER_ERROR if error.status < 500 else SERVER_ERROR
    except ConnectionFailed as error:
        err.print(f"[red]error[/red] {error}")
        err.print(f"  what to do: {error.hint}")
        return SERVER_ERROR
    except VerificationFailed as error:
        err.print(f"[red]verification failed[/red] {error}")
        return VERIFY_FAILED
    except (ValueError, OSError) as error:
        err.print(f"[red]error[/red] {error}")
        return USER_ERROR
    return OK


def main() -> None:
    sys.exit(run(sys.argv[1:]))
