"""`crmchat`: run the service, the embedded Dataverse, pack the solution, manage settings.

    crmchat serve [--dev]               the chat service under gunicorn (--dev: werkzeug)
    crmchat dataverse serve             the embedded Dataverse alone (HTTP or HTTPS)
    crmchat dataverse token [--user U]  a bearer token the embedded Dataverse accepts
    crmchat solution pack [--managed]   the importable zips, CRMChat and CRMChatSales
                                        (unmanaged unless --managed)
    crmchat solution check              XSD validation and reference checks, both solutions
    crmchat region list | set CODE      the hosting region
    crmchat secret set | verify         the organisation's secret word
    crmchat outbox list | retry KEY [--without-regarding] | drop KEY
                                        CRM writes that are waiting or parked
    crmchat privacy purge               delete chats past their widget's retention, now

Exit codes: 0 success (for `secret verify`: the word matches), 1 the word does not match or
a check found problems, 2 bad usage or input, 3 locked after too many wrong guesses.
"""

from __future__ import annotations

import argparse
import getpass
import os
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["main"]


def _read_word(prompt: str, *, confirm: bool = False) -> str:
    """The secret word from a terminal (not echoed) or from one line of standard input."""
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    word = getpass.getpass(prompt)
    if confirm and getpass.getpass("Repeat it: ") != word:
        raise SystemExit("crmchat: the two words differ; nothing was changed")
    return word


def _cmd_serve(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from connector.settings import Settings
    from connector.web.health import disk_problem

    overrides = {
        k: v for k, v in (("host", args.host), ("port", args.port), ("workers", args.workers)) if v
    }
    try:
        settings = Settings(**overrides)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "settings"
        print(f"crmchat: {where}: {first['msg']}", file=sys.stderr)
        return 2
    problem = disk_problem(settings.data_dir)
    if problem is not None:
        print(f"crmchat: {problem}", file=sys.stderr)
        return 2
    if args.dev:
        from connector.app import create_app, run_server

        run_server(create_app(overrides))
        return 0

    from connector.app import create_app, print_addresses
    from connector.server import check_workers, serve

    refusal = check_workers(settings)
    if refusal is not None:
        print(f"crmchat: {refusal}", file=sys.stderr)
        return 2
    print_addresses(settings)
    serve(settings, lambda: create_app(overrides))
    return 0


def _cmd_dataverse_serve(args: argparse.Namespace) -> int:
    from connector.dataverse_local import serve
    from connector.settings import Settings

    db = args.db or Settings().embedded_db
    if bool(args.tls_cert) != bool(args.tls_key):
        print("crmchat: give both --tls-cert and --tls-key, or neither", file=sys.stderr)
        return 2
    _prepare_shared_dataverse(db, demo=args.demo)
    serve(host=args.host, port=args.port, db_path=db, tls_cert=args.tls_cert, tls_key=args.tls_key)
    return 0


def _prepare_shared_dataverse(db: Path, *, demo: bool) -> None:
    """The service's application user (so service processes can be given its token), and
    the demo records when asked for."""
    from connector.crm.connection import ensure_service_user
    from connector.dataverse_local import create_dataverse_app

    app = create_dataverse_app(db)
    try:
        ensure_service_user(app.store)
        if demo:
            from connector.demo import seed_demo

            seed_demo(app)
    finally:
        app.store.close()


def _cmd_dataverse_token(args: argparse.Namespace) -> int:
    from connector.crm.connection import embedded_token
    from connector.settings import Settings

    if args.days <= 0:
        print("crmchat: --days must be positive", file=sys.stderr)
        return 2
    try:
        settings = Settings()
        db = args.db or settings.embedded_db
        lifetime = int(args.days * 86400)
        apps = settings.embedded_dynamics_apps
        print(embedded_token(db, user=args.user, lifetime_secs=lifetime, dynamics_apps=apps))
    except LookupError as error:
        print(f"crmchat: {error}", file=sys.stderr)
        return 2
    return 0


def _cmd_solution_pack(args: argparse.Namespace) -> int:
    from connector.solution.pack import pack_solution
    from connector.solution.paths import DYNAMICS365_SOLUTION_DIR, SOLUTION_DIR

    # The core first: it is imported first, and the second solution depends on it.
    for folder in (SOLUTION_DIR, DYNAMICS365_SOLUTION_DIR):
        print(pack_solution(out_dir=args.out, solution_dir=folder, managed=args.managed))
    return 0


def _cmd_solution_check(args: argparse.Namespace) -> int:
    from connector.solution.check import check_solution

    problems = check_solution()
    for problem in problems:
        print(problem)
    print(f"{len(problems)} problem(s)" if problems else "solution OK: 0 errors")
    return 1 if problems else 0


def _cmd_region_list(args: argparse.Namespace) -> int:
    from connector.crm.connection import connect
    from connector.crm.org_settings import read_org_settings
    from connector.regions import all_regions
    from connector.settings import Settings

    current = read_org_settings(connect(Settings()).client).region
    for region in all_regions():
        mark = "*" if region.code == current else " "
        print(f"{mark} {region.code:<12} {region.name:<16} {region.service_url}")
    return 0


def _cmd_region_set(args: argparse.Namespace) -> int:
    from connector.crm.connection import connect
    from connector.crm.org_settings import save_region
    from connector.settings import Settings

    try:
        region = save_region(connect(Settings()).client, args.code)
    except ValueError as error:
        print(f"crmchat: {error}", file=sys.stderr)
        return 2
    print(f"region set to {region.name} ({region.code})")
    return 0


def _cmd_secret_set(args: argparse.Namespace) -> int:
    from connector.crm.connection import connect
    from connector.crm.org_settings import save_secret_word
    from connector.crm.secret_word import SecretWordError
    from connector.settings import Settings

    settings = Settings()
    word = _read_word("New secret word: ", confirm=True)
    try:
        save_secret_word(connect(settings).client, word, data_dir=settings.data_dir)
    except SecretWordError as error:
        print(f"crmchat: {error}", file=sys.stderr)
        return 2
    print("secret word set")
    return 0


def _cli_guesser() -> str:
    # Whoever runs the CLI is the local account (CLI callers have no network address);
    # its wrong guesses lock that account only, never the support team's sign-ins.
    return f"cli:{os.getuid()}@{socket.gethostname()}"


def _cmd_secret_verify(args: argparse.Namespace) -> int:
    from connector.crm.connection import connect
    from connector.crm.org_settings import check_secret_word
    from connector.crm.secret_word import TooManyGuesses
    from connector.settings import Settings

    settings = Settings()
    word = _read_word("Secret word the caller gave: ")
    try:
        result = check_secret_word(
            connect(settings).client, word, data_dir=settings.data_dir, guesser=_cli_guesser()
        )
    except TooManyGuesses as error:
        print(f"crmchat: {error}", file=sys.stderr)
        return 3
    if not result.match:
        time.sleep(result.delay_secs)
    print("yes" if result.match else "no")
    return 0 if result.match else 1


def _cmd_privacy_purge(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from connector.chat.redis_state import RedisLiveState
    from connector.chat.state import SqliteLiveState
    from connector.crm.connection import connect
    from connector.crm.retention import purge_expired_chats
    from connector.settings import Settings

    settings = Settings()
    client = connect(settings).client
    # The service's own live-chat store, as the service opens it (connector/chat/live.py);
    # SQLite's WAL and busy timeout let this run beside a running service.
    redis_url = settings.redis_url.get_secret_value() if settings.redis_url else None
    live: Any = (
        RedisLiveState.from_url(redis_url)
        if redis_url
        else SqliteLiveState(settings.data_dir / "live.sqlite")
    )
    try:
        result = purge_expired_chats(client, now=datetime.now(UTC), live=live)
    finally:
        live.close()
    print(
        f"deleted {result.chats} chats and {result.notes} notes past their retention,"
        f" and {result.live_chats} ended chats from the live-chat store"
    )
    return 0


def _outbox(settings: Any, *, writing: bool) -> Any:
    """The service's outbox file; with `writing`, able to write chat activities now."""
    from connector.crm.outbox import Outbox

    handlers: dict[str, Any] = {}
    if writing:
        from connector.crm.chat_activity import CHAT_ACTIVITY_KIND, chat_activity_handler
        from connector.crm.connection import connect

        connection = connect(settings)
        handlers[CHAT_ACTIVITY_KIND] = chat_activity_handler(
            connection.client, secret=connection.service_secret
        )
    return Outbox(settings.data_dir / "outbox.sqlite", handlers)


def _cmd_outbox_list(args: argparse.Namespace) -> int:
    from connector.settings import Settings

    with _outbox(Settings(), writing=False) as box:
        parked = box.parked()
        pending = box.pending()
    print(f"{pending} waiting, {len(parked)} parked")
    for item in parked:
        print(f"{item['key']}  {item['kind']}  attempts={item['attempts']}  {item['error']}")
    return 0


def _cmd_outbox_retry(args: argparse.Namespace) -> int:
    from connector.settings import Settings

    with _outbox(Settings(), writing=True) as box:
        item = next((i for i in box.parked() if i["key"] == args.key), None)
        if item is None:
            print(f"crmchat: no parked item {args.key}", file=sys.stderr)
            return 2
        if args.without_regarding:
            # Write it anyway: the transcript matters more than a link to a deleted record.
            box.rewrite_parked(args.key, {**item["payload"], "regarding": None})
        else:
            box.requeue_parked(key=args.key)
        box.run_due()
        still = next((i for i in box.parked() if i["key"] == args.key), None)
    if still is not None:
        print(f"crmchat: {args.key} is parked again: {still['error']}", file=sys.stderr)
        return 1
    print(f"{args.key} written")
    return 0


def _cmd_outbox_drop(args: argparse.Namespace) -> int:
    from connector.settings import Settings

    with _outbox(Settings(), writing=False) as box:
        dropped = box.drop_parked(args.key)
    if not dropped:
        print(f"crmchat: no parked item {args.key}", file=sys.stderr)
        return 2
    print(f"{args.key} dropped")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="crmchat", description="CRM Chat: live chat in Dataverse")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the chat service")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int, help="worker processes (more than 1 needs Redis)")
    serve.add_argument(
        "--dev", action="store_true", help="werkzeug's development server instead of gunicorn"
    )
    serve.set_defaults(run=_cmd_serve)

    dataverse = commands.add_parser("dataverse", help="the embedded Dataverse")
    dv = dataverse.add_subparsers(dest="action", required=True, metavar="ACTION")
    dv_serve = dv.add_parser("serve", help="run the embedded Dataverse alone")
    dv_serve.add_argument("--host", default="127.0.0.1")
    dv_serve.add_argument("--port", type=int, default=8443)
    dv_serve.add_argument("--db", type=Path, help="SQLite file (default: the data folder's)")
    dv_serve.add_argument("--tls-cert", type=Path, help="PEM certificate: serve HTTPS")
    dv_serve.add_argument("--tls-key", type=Path, help="PEM private key for --tls-cert")
    dv_serve.add_argument(
        "--demo", action="store_true", help="create the demo agents, widgets and records"
    )
    dv_serve.set_defaults(run=_cmd_dataverse_serve)
    dv_token = dv.add_parser("token", help="print a bearer token for a system user")
    dv_token.add_argument(
        "--user", default="admin", help="domain name, its part before @, or full name"
    )
    dv_token.add_argument("--db", type=Path)
    dv_token.add_argument(
        "--days", type=float, default=1 / 24, help="how long the token is valid (default 1 h)"
    )
    dv_token.set_defaults(run=_cmd_dataverse_token)

    solution = commands.add_parser("solution", help="the Dataverse solution")
    sol = solution.add_subparsers(dest="action", required=True, metavar="ACTION")
    sol_pack = sol.add_parser(
        "pack", help="write the importable zips (core, then CRM Chat for Dynamics 365)"
    )
    sol_pack.add_argument("--out", type=Path, default=Path("dist"))
    sol_pack.add_argument(
        "--managed", action="store_true", help="the managed package (default: unmanaged)"
    )
    sol_pack.set_defaults(run=_cmd_solution_pack)
    sol.add_parser("check", help="validate customizations.xml and references").set_defaults(
        run=_cmd_solution_check
    )

    region = commands.add_parser("region", help="the hosting region")
    reg = region.add_subparsers(dest="action", required=True, metavar="ACTION")
    reg.add_parser("list", help="list the regions; * marks the current one").set_defaults(
        run=_cmd_region_list
    )
    reg_set = reg.add_parser("set", help="choose the region")
    reg_set.add_argument("code")
    reg_set.set_defaults(run=_cmd_region_set)

    secret = commands.add_parser("secret", help="the organisation's secret word")
    sec = secret.add_subparsers(dest="action", required=True, metavar="ACTION")
    sec.add_parser("set", help="set a new secret word (read from the terminal)").set_defaults(
        run=_cmd_secret_set
    )
    sec.add_parser("verify", help="check a word a caller gives: prints yes or no").set_defaults(
        run=_cmd_secret_verify
    )

    outbox = commands.add_parser("outbox", help="CRM writes waiting or parked")
    out = outbox.add_subparsers(dest="action", required=True, metavar="ACTION")
    out.add_parser("list", help="count waiting items, list parked ones").set_defaults(
        run=_cmd_outbox_list
    )
    out_retry = out.add_parser("retry", help="write a parked item again, now")
    out_retry.add_argument("key")
    out_retry.add_argument(
        "--without-regarding",
        action="store_true",
        help="write the chat anyway, without its (deleted or broken) regarding record",
    )
    out_retry.set_defaults(run=_cmd_outbox_retry)
    out_drop = out.add_parser("drop", help="forget a parked item for good")
    out_drop.add_argument("key")
    out_drop.set_defaults(run=_cmd_outbox_drop)

    privacy = commands.add_parser("privacy", help="what CRM Chat keeps about visitors")
    priv = privacy.add_subparsers(dest="action", required=True, metavar="ACTION")
    priv.add_parser(
        "purge", help="delete chats past their widget's retention (the hourly job, now)"
    ).set_defaults(run=_cmd_privacy_purge)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `crmchat` console script."""
    args = _parser().parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    raise SystemExit(main())
