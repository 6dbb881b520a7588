"""``aiops-analyzer``: serve the webhook, analyze a payload file, or run the evaluation."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from aiops_analyzer.core.config import Settings

logger = logging.getLogger("aiops_analyzer")


def settings_error_lines(exc: ValidationError) -> list[str]:
    """One line per problem, naming the environment variable."""
    from aiops_analyzer.core.config_checks import variable_for

    lines = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        message = str(error.get("msg", "")).removeprefix("Value error, ")
        loc = error.get("loc", ())
        if not loc:
            lines += message.splitlines()  # model checks name their variables themselves
            continue
        field = str(loc[0])
        field = field.removeprefix("AIOPS_").lower() if field.isupper() else field
        variable = variable_for(field, Settings.model_fields)
        lines.append(message if variable in message else f"{variable}: {message}")
    return lines


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment, or exit 2 with one line per invalid variable."""
    from pydantic_settings import SettingsError

    from aiops_analyzer.core.config_checks import variable_for

    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = settings_error_lines(exc)
    except SettingsError as exc:
        # A list or mapping setting whose value is not JSON (pydantic-settings parses it first).
        match = re.search(r'field "(\w+)"', str(exc))
        field = match.group(1) if match else "?"
        lines = [
            f"{variable_for(field, Settings.model_fields)}: not valid JSON "
            '(a JSON list is expected, e.g. ["first", "second"])'
        ]
    for line in lines:
        print(f"aiops-analyzer: configuration error: {line}", file=sys.stderr)
    raise SystemExit(2)


def warn_unknown_variables() -> None:
    """A typo such as AIOPS_WORKER=8 would be ignored silently: say so, with the closest name."""
    from aiops_analyzer.core.config_checks import unknown_variables

    for variable, closest in unknown_variables(Settings.model_fields, os.environ):
        hint = f"; did you mean {closest}?" if closest else ""
        logger.warning(
            f"{variable} is not a setting of the analyzer and is ignored{hint}",
            extra={"event": "unknown_setting", "variable": variable, "closest": closest},
        )


def port_number(text: str) -> int:
    """--port: 1-65535, refused by argparse naming the option (0 used to mean "the default")."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port number (1-65535)")
    return port


def _serve(args: argparse.Namespace) -> int:
    from aiops_analyzer import server
    from aiops_analyzer.core.config_checks import database_connection_problem, prepare_data_dir
    from aiops_analyzer.core.logging import configure_logging
    from aiops_analyzer.main import create_app

    overrides: dict[str, Any] = {}
    if args.host:
        overrides["host"] = args.host
    if args.port is not None:
        overrides["port"] = args.port
    settings = load_settings(**overrides)
    problem = prepare_data_dir(settings) or database_connection_problem(settings)
    if problem:
        print(f"aiops-analyzer: configuration error: {problem}", file=sys.stderr)
        return 2
    configure_logging(settings)
    warn_unknown_variables()
    if settings.auth_disabled:
        logger.warning(
            "AIOPS_AUTH_DISABLED=true: the webhook and /analyses accept requests without a token"
            " (local development only)",
            extra={"event": "auth_disabled"},
        )
    logger.info(
        "starting",
        extra={
            "event": "starting",
            "host": settings.host,
            "port": settings.port,
            "workers": settings.workers,
            "engine": "llm" if settings.llm_enabled else "rules",
        },
    )
    server.run(
        create_app(settings),
        settings,
        access_log=args.access_log,
        behind_proxy=args.behind_proxy,
    )
    return 0


async def _analyze_alerts(document: Any, settings: Settings) -> list[dict[str, Any]]:
    from aiops_analyzer import engines, evidence
    from aiops_analyzer.api.payload import AlertmanagerPayload
    from aiops_analyzer.scrub import Scrubber

    payload = AlertmanagerPayload.model_validate(document)
    scrubber = Scrubber(settings.scrub_extra_patterns)
    analyses = []
    for item in payload.alerts:
        alert = scrubber.scrub_alert(item.to_alert())
        items = await evidence.gather_evidence(alert, settings)
        result = await engines.analyze(alert, items, settings)
        analyses.append(
            {
                "alert": alert.model_dump(mode="json"),
                "analysis": result.model_dump(mode="json"),
                "evidence": [e.model_dump(mode="json") for e in items],
            }
        )
    return analyses


def _read_payload(name: str) -> Any:
    """The JSON document in file `name`, or on standard input for "-"."""
    if name == "-":
        return json.loads(sys.stdin.read())
    return json.loads(Path(name).read_text(encoding="utf-8"))


def _print_readable(analyses: list[dict[str, Any]]) -> None:
    from aiops_analyzer.console import analysis_lines, heading

    for item in analyses:
        alert = item["alert"]
        lines = heading(
            alert["labels"].get("alertname", "?"),
            alert["status"],
            alert["labels"],
            alert["starts_at"],
        )
        lines += analysis_lines(item["analysis"], item["evidence"])
        print("\n".join(lines))


def _analyze(args: argparse.Namespace) -> int:
    from aiops_analyzer.api.errors import describe_errors

    source = "standard input" if args.payload == "-" else args.payload
    try:
        document = _read_payload(args.payload)
    except OSError as exc:
        print(f"aiops-analyzer: cannot read {source}: {exc.strerror}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"aiops-analyzer: {source} is not valid JSON: {exc}", file=sys.stderr)
        return 2
    # No server: the webhook token is not needed to analyze a file.
    settings = load_settings(auth_disabled=True)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    try:
        analyses = asyncio.run(_analyze_alerts(document, settings))
    except ValidationError as exc:
        message, _ = describe_errors(
            exc.errors(include_url=False, include_input=False, include_context=False)
        )
        print(
            f"aiops-analyzer: {source} is not an Alertmanager payload: {message}", file=sys.stderr
        )
        return 2
    if args.json:
        json.dump(analyses, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        _print_readable(analyses)
    return 0


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("aiops-analyzer")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"


def _eval(rest: list[str]) -> int:
    # The evaluation harness is its own package (eval/harness), not part of the service image.
    try:
        from aiops_eval.cli import main as eval_main
    except ImportError:
        print(
            "aiops-analyzer eval: the evaluation harness is not installed; in a checkout of the "
            "repository run `make install` (or `pip install -e eval/harness`)",
            file=sys.stderr,
        )
        return 2
    return eval_main(rest)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aiops-analyzer",
        description="Alertmanager webhook receiver that explains alerts with evidence.",
    )
    parser.add_argument("--version", action="version", version=f"aiops-analyzer {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="Run the HTTP service (webhook, API, workers).")
    serve.add_argument("--host", help="Bind address (default AIOPS_HOST, 127.0.0.1).")
    serve.add_argument("--port", type=port_number, help="Port (default AIOPS_PORT or PORT, 8080).")
    serve.add_argument(
        "--access-log", action="store_true", help="Log every HTTP request (JSON lines)."
    )
    serve.add_argument(
        "--behind-proxy",
        action="store_true",
        help="Trust X-Forwarded-* headers from any address (Cloud Run, a reverse proxy).",
    )
    analyze = commands.add_parser(
        "analyze",
        help="Analyze the alerts of a webhook payload and print the analyses (no server).",
    )
    analyze.add_argument(
        "payload", help='An Alertmanager webhook payload: a JSON file, or "-" for standard input.'
    )
    analyze.add_argument(
        "--json",
        action="store_true",
        help="Print JSON (alert, analysis, evidence) instead of text.",
    )
    commands.add_parser(
        "eval",
        help="Run the evaluation scenarios (see `aiops-analyzer eval --help`).",
        add_help=False,
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "eval":
        return _eval(argv[1:])
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    return _analyze(args)


if __name__ == "__main__":
    raise SystemExit(main())
