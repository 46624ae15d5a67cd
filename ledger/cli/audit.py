"""`ledger audit …`: tamper evidence (SPEC §4 and §13): verify the hash chains and the
authenticated checkpoints, take a checkpoint."""

from __future__ import annotations

from pathlib import Path

import typer

from ledger.bootstrap import build_app
from ledger.config import check_settings, get_settings

audit_app = typer.Typer(help="Tamper evidence: hash chains and authenticated checkpoints.")


@audit_app.command("checkpoint")
def audit_checkpoint(
    out: Path | None = typer.Option(
        None, "--out", help="Append the checkpoint to this file as one JSON line."
    ),
) -> None:
    """Record every stream's (id, version, head hash) and the global position under a Merkle
    root authenticated by HMAC-SHA256 with LEDGER_AUDIT_KEY; stored in the database, appended
    to --out, and published on `ledger.checkpoints` with Kafka. Cron (UTC), after the day's
    collections: `15 6 * * * ledger audit checkpoint --out /var/lib/ledger/checkpoints.jsonl`."""
    from ledger.app.checkpoints import take_checkpoint
    from ledger.store.chainscan import StoreScanner
    from ledger.store.checkpoints import CheckpointStore
    from ledger.store.db import Database

    settings = check_settings(get_settings())
    key = settings.audit_key_bytes()  # a malformed key fails here, before any work
    if out is not None and out.is_dir():
        raise typer.BadParameter(f"{str(out)!r} is a directory", param_hint="--out")
    store = CheckpointStore(Database(settings.database_url))
    app = build_app(settings)
    scanner = StoreScanner.of(settings.database_url, app.recorder)
    checkpoint, line = take_checkpoint(app, store, key, out, scanner=scanner)
    if settings.kafka_bootstrap:
        from consumers.checkpoints import publish_checkpoint

        publish_checkpoint(settings, checkpoint, line)
    where = ["database"] + ([str(out)] if out else []) + (
        [settings.topic_checkpoints] if settings.kafka_bootstrap else [])  # fmt: skip
    typer.echo(
        f"checkpoint {checkpoint['checkpoint_id']}: {checkpoint['stream_count']} streams, "
        f"{checkpoint['event_count']} events, global position {checkpoint['global_position']}, "
        f"merkle root {checkpoint['merkle_root']} (kept in {', '.join(where)})"
    )


@audit_app.command("verify")
def audit_verify(
    checkpoints: Path | None = typer.Option(
        None, "--checkpoints", help="Also verify against every checkpoint line of this file."
    ),
) -> None:
    """Recompute every stream's hash chain (naming the first broken event), then prove every
    checkpointed stream still exists and reaches its checkpointed version with the same head
    hash. Exit 1 on any finding. Without LEDGER_AUDIT_KEY it says what it cannot prove."""
    from ledger.app.checkpoints import file_lines, verify
    from ledger.store.chainscan import StoreScanner
    from ledger.store.checkpoints import CheckpointStore
    from ledger.store.db import Database

    settings = check_settings(get_settings())
    key = settings.audit_key_bytes()
    if checkpoints is not None and not checkpoints.is_file():
        raise typer.BadParameter(f"{str(checkpoints)!r} is not a file", param_hint="--checkpoints")
    sources = CheckpointStore(Database(settings.database_url)).lines()
    if checkpoints is not None:
        sources += file_lines(checkpoints)
    app = build_app(settings)
    result = verify(app, key, sources, StoreScanner.of(settings.database_url, app.recorder))
    walked = result.walk
    for broken in walked.broken:
        typer.echo(f"BROKEN: customer {broken.customer_id} position {broken.position}: "
                   f"{broken.reason} ({walked.checked} events verified)")  # fmt: skip
    if not walked.broken:
        typer.echo(f"OK: {walked.checked} events verified, every chain intact")
    for finding in result.findings:
        typer.echo(f"TAMPERED: {finding.kind}: {finding.message}")
    if result.checkpoints and not result.findings:
        latest = result.latest or {}
        typer.echo(f"OK: {result.checkpoints} checkpoints verified, the latest "
                   f"{latest.get('checkpoint_id')} at global position "
                   f"{latest.get('global_position')}")  # fmt: skip
    elif not result.checkpoints and not result.findings:
        typer.echo(
            "NOTE: no checkpoint to verify against: deleting a stream's newest events "
            "or a whole stream, or re-hashing rewritten events, cannot be detected"
        )
    if key is None and result.checkpoints:
        typer.echo("UNPROVEN: LEDGER_AUDIT_KEY is not set: the checkpoints' HMACs were not "
                   "checked, so a checkpoint forged together with rewritten events would pass; "
                   "the chains and the checkpoints' own Merkle roots were checked")  # fmt: skip
    if not result.ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add this group's commands to the `ledger` app."""
    app.add_typer(audit_app, name="audit")
