"""Set, show or remove the limits of a user, a key, or the default row.

    set_limits --user alice --rpm 60 --daily-tokens 200000 --budget-usd 25
    set_limits --token laptop --max-parallel 2        # a key, by name or prefix
    set_limits --default --tpm 100000                  # users without limits of their own
    set_limits --user alice --clear rpm budget-usd     # remove some limits
    set_limits --user alice --clear                    # remove the row (the defaults apply again)
    set_limits --user alice                            # show

Mistakes (unknown user or key, 0 or negative values, setting and clearing one limit) exit
non-zero with a message. Limits must be positive: 0 is refused rather than read as "unlimited" or "block everything";
remove a limit with --clear. Changes apply in every gateway process within LIMITS_CACHE_SECONDS.
"""

from __future__ import annotations

from argparse import ArgumentTypeError
from decimal import Decimal, InvalidOperation

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import CommandError
from django.db.models import Q

from accounts.audit import AuditedCommand
from accounts.models import ApiKey, Limits
from accounts.services import set_limits

FLAGS = {name.replace("_", "-"): name for name in Limits.LIMIT_FIELDS}  # "daily-tokens" -> "daily_tokens"


def positive_int(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ArgumentTypeError(f"{raw!r} is not a whole number") from None
    if value < 1:
        raise ArgumentTypeError(f"limits must be at least 1 (got {value}); use --clear NAME to remove a limit")
    return value


def positive_usd(raw: str) -> Decimal:
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise ArgumentTypeError(f"{raw!r} is not an amount in USD") from None
    if not value.is_finite() or value <= 0 or value != value.quantize(Decimal("0.0001")):
        raise ArgumentTypeError(f"--budget-usd must be a positive amount with at most 4 decimals (got {raw})")
    return value


def find_target(*, user: str | None, token: str | None, default: bool) -> dict:
    """The Limits lookup for the chosen owner: {"user": u} / {"api_key": k} / {"is_default": True}."""
    if default:
        return {"is_default": True}
    if user is not None:
        found = get_user_model().objects.filter(username=user).first()
        if found is None:
            raise CommandError(f"no user named {user!r}")
        return {"user": found}
    keys = list(ApiKey.objects.select_related("user").filter(Q(prefix=token) | Q(name=token)))
    if not keys:
        raise CommandError(f"no key with prefix or name {token!r}")
    if len(keys) > 1:
        raise CommandError(f"several keys are named {token!r}; give the key's prefix instead")
    return {"api_key": keys[0]}


def label(target: dict) -> str:
    if "user" in target:
        return f"user {target['user'].username}"
    if "api_key" in target:
        key = target["api_key"]
        return f"key {key.name!r} ({key.prefix}) of {key.user.username}"
    return "the default (users without limits of their own)"


class Command(AuditedCommand):
    help = "Set, show or remove limits of a user, a key (--token NAME_OR_PREFIX) or the default row."

    def add_arguments(self, parser):
        who = parser.add_mutually_exclusive_group(required=True)
        who.add_argument("--user", help="Username.")
        who.add_argument("--token", help="A key's name or prefix (gw-...).")
        who.add_argument("--default", action="store_true", help="Limits of users without their own.")
        parser.add_argument("--rpm", type=positive_int, help="Requests per minute.")
        parser.add_argument("--tpm", type=positive_int, help="Tokens per minute.")
        parser.add_argument("--max-parallel", type=positive_int, help="Requests in flight at once.")
        parser.add_argument("--daily-tokens", type=positive_int, help="Tokens per UTC day.")
        parser.add_argument("--monthly-tokens", type=positive_int, help="Tokens per UTC calendar month.")
        parser.add_argument("--budget-usd", type=positive_usd, help="USD per UTC calendar month.")
        parser.add_argument(
            "--clear",
            nargs="*",
            metavar="LIMIT",
            choices=[*FLAGS, *FLAGS.values()],
            help=f"Remove these limits ({', '.join(FLAGS)}); alone: remove the whole row.",
        )

    def handle(self, *args, **opts):
        target = find_target(user=opts["user"], token=opts["token"], default=opts["default"])
        values = {name: opts[name] for name in Limits.LIMIT_FIELDS if opts[name] is not None}
        clear = None if opts["clear"] is None else sorted({FLAGS.get(n, n) for n in opts["clear"]})
        both = sorted(set(values) & set(clear or ()))
        if both:
            raise CommandError(f"cannot both set and clear {', '.join(both)}")
        if clear == [] and values:
            raise CommandError("--clear without limit names removes every limit; it cannot be combined with values")
        if not values and clear is None:
            row = Limits.objects.filter(**target).first()
            self.stdout.write(f"Limits of {label(target)}: {row.describe() if row else 'none set'}.")
            return
        try:
            row = set_limits(target, values, clear)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        if row is None:
            self.stdout.write(f"Removed the limits of {label(target)}.")
            return
        self.stdout.write(f"Limits of {label(target)}: {row.describe()}.")
        if "user" in target and row.describe() == "no limits":
            self.stdout.write("This empty row exempts the user from the default limits; --clear alone removes it.")
