#!/usr/bin/env python
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway_project.settings")
    from django.core.management import execute_from_command_line

    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command and command not in SERVERS:
        # What the command changes is the operator's (apps.core.audit); a server's requests name their own.
        from apps.core.audit import AuditActor, audit_actor_token

        audit_actor_token(AuditActor(actor=f"command:{command}"[:255], via="command"))
    execute_from_command_line(sys.argv)


SERVERS = ("serve", "runserver")


if __name__ == "__main__":
    main()
