"""apply_config: make the database say what a config file says, in one transaction, and list the diff.

Sections are applied in order (settings, upstreams, users, models, prices, keys, limits) inside one
`transaction.atomic()`: the first mistake raises ConfigError naming its line and nothing of the
file is kept. A dry run applies everything the same way and then rolls back, so it reports exactly
the diff (and the errors) a real run would. Writes of keys and limits go through accounts.services.

Identity per section: upstreams by name, users by username, model pool members by (alias,
upstream) — the [[models]] entries of one alias are its whole pool, members not listed are removed —,
prices by model,
keys by (user, name), limits by user / key ("user/key name") / default = true. Applying the same
file twice changes nothing the second time. With `prune`, rows of a section present in the file
but not listed in it are deleted (never users or keys; a key's limits only when [[keys]] is given).
"""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction

from accounts import services
from accounts.models import ApiKey, Limits
from proxy_app.config import fileformat
from proxy_app.config.entries import ConfigError, Entry, sections
from proxy_app.models import LogSettings, ModelMapping, ModelPrice, PoolMember, Upstream, UsagePolicy

DEFAULT_UPSTREAM = "(default Gemini upstream)"
UPSTREAM_FIELDS = {
    "name",
    "kind",
    "base_url",
    "api_key_env",
    "enabled",
    "detailed_logging",
    "max_concurrent",
    "rpm",
    "tpm",
}
MODEL_FIELDS = {"alias", "model", "upstream", "hidden", "priority", "weight"}
PRICE_FIELDS = {"model", "input_per_million", "output_per_million", "cached_input_per_million"}
USER_FIELDS = {"username", "email", "first_name", "last_name", "is_staff", "is_superuser", "is_active"}
KEY_FIELDS = {"user", "name", "models", "allowed_ips", "expires_at", "revoked"}
LIMIT_OWNERS = {"user", "key", "default"}


def apply_file(path: str | Path, *, dry_run: bool = False, prune: bool = False) -> tuple[list[str], list[str]]:
    """Apply the file; return (changes, warnings). ConfigError / ConfigFileError for bad input."""
    data, lines = fileformat.load(path)
    found = sections(data, lines)
    applier = Applier(found, present=set(data), prune=prune)
    with transaction.atomic():
        applier.run()
        if dry_run:
            transaction.set_rollback(True)
    return applier.changes, applier.warnings


def show(value) -> str:
    if isinstance(value, Upstream):
        return value.name
    if value is None or value == "":
        return "(none)"
    if isinstance(value, Decimal):
        return f"{value.normalize():f}"
    return str(value)


class Applier:
    def __init__(self, found: dict[str, list[Entry]], *, present: set[str], prune: bool) -> None:
        self.found, self.present, self.prune = found, present, prune
        self.changes: list[str] = []
        self.warnings: list[str] = []
        self.aliases_seen: set[str] = set()

    def run(self) -> None:
        for entry in self.found["settings"]:
            self.settings(entry)
        kept: dict[str, set] = {}
        for name in ("upstreams", "users", "models", "prices", "keys", "limits"):
            seen: dict = {}
            for entry in self.found[name]:
                identity = getattr(self, name.removesuffix("s"))(entry)
                if identity in seen:
                    raise entry.error(f"listed twice (also at {seen[identity].lines.where(*seen[identity].path)})")
                seen[identity] = entry
            kept[name] = set(seen)
            if name == "models":
                self.drop_unlisted_members(seen)
        for name in ("models", "prices", "limits", "upstreams"):  # mappings go before their upstreams
            if self.prune and name in self.present:
                self.prune_section(name, kept[name])

    # --- writing one row ------------------------------------------------------------------------

    def record(self, sign: str, what: str, diffs: list[str]) -> None:
        self.changes.append(f"{sign} {what}" + (f": {'; '.join(diffs)}" if diffs else ""))

    @staticmethod
    def assign(obj, values: dict, names: dict[str, str] | None = None) -> list[str]:
        """Set the fields that differ; return them as "field old → new" (with the file's field names)."""
        diffs = []
        for field, new in values.items():
            old = getattr(obj, field)
            if old != new:
                diffs.append(f"{(names or {}).get(field, field)} {show(old)} → {show(new)}")
                setattr(obj, field, new)
        return diffs

    def save(self, entry: Entry, obj, what: str, values: dict, fields: dict[str, str] | None = None) -> None:
        """Assign `values`, validate, save when new or changed, record the diff. `fields` maps model
        field names to the file's where they differ (upstream_model -> model), for error lines."""
        new = obj.pk is None
        diffs = self.assign(obj, values, fields)
        if not new and not diffs:
            return
        try:
            obj.full_clean()
        except ValidationError as exc:
            field, messages = next(iter(exc.message_dict.items()))
            name = (fields or {}).get(field, field)
            raise entry.error(f"{name}: {' '.join(messages)}", name) from None
        obj.save()
        if new:
            names = fields or {}
            self.record("+", what, [f"{names.get(field, field)}={show(value)}" for field, value in values.items()])
        else:
            self.record("~", what, diffs)

    # --- sections -----------------------------------------------------------------------------------

    def settings(self, entry: Entry) -> None:
        entry.check_fields({"detailed_logging", "usage_retention_days"})
        if entry.has("detailed_logging"):
            row = LogSettings.objects.first() or LogSettings()
            wanted = entry.flag("detailed_logging")
            if row.pk is not None or wanted:
                self.save(entry, row, "settings detailed_logging", {"detailed_logging": wanted})
        if entry.has("usage_retention_days"):
            row = UsagePolicy.objects.filter(pk=1).first() or UsagePolicy(pk=None)
            days = entry.count("usage_retention_days", minimum=0)
            if row.pk is None:
                row.retention_days = None
            names = {"retention_days": "usage_retention_days"}
            self.save(entry, row, "settings usage_retention_days", {"retention_days": days}, names)

    def upstream(self, entry: Entry) -> str:
        entry.check_fields(UPSTREAM_FIELDS)
        name = entry.text("name", required=True)
        kind = entry.text("kind", required=True)
        if kind not in Upstream.Kind.values:
            raise entry.error(f"'kind' must be one of {', '.join(Upstream.Kind.values)} (got {kind!r})", "kind")
        values = {
            "kind": kind,
            "base_url": entry.text("base_url", required=True).rstrip("/"),
            "enabled": entry.flag("enabled", True),
            "detailed_logging": entry.flag("detailed_logging", False),
            **{f: entry.count(f) for f in ("max_concurrent", "rpm", "tpm")},
        }
        row = Upstream.objects.filter(name=name).first() or Upstream(name=name)
        if entry.has("api_key_env"):
            env = entry.env_name("api_key_env")
            values["api_key_env"] = env
            if env and row.api_key_encrypted:  # the env var replaces a stored key; never print either
                row.api_key_encrypted = ""
                self.record("~", f"upstream {name}", ["stored API key removed (now from the environment)"])
            if env and env not in os.environ:
                self.warnings.append(f"{entry.lines.where(*entry.path, 'api_key_env')}: ${env} is not set here")
        self.save(entry, row, f"upstream {name}", values)
        return name

    def user(self, entry: Entry) -> str:
        entry.check_fields(USER_FIELDS)
        username = entry.text("username", required=True)
        User = get_user_model()
        row = User.objects.filter(username=username).first()
        if row is None:
            row = User(username=username)
            row.set_unusable_password()  # passwords never come from the file: set one with changepassword
        values = {f: entry.text(f) for f in ("email", "first_name", "last_name") if entry.has(f)}
        values |= {f: entry.flag(f) for f in ("is_staff", "is_superuser", "is_active") if entry.has(f)}
        self.save(entry, row, f"user {username}", values)
        return username

    def model(self, entry: Entry) -> tuple[str, str]:
        """One pool member of an alias; the alias's `hidden` must agree across its entries."""
        entry.check_fields(MODEL_FIELDS)
        alias = entry.text("alias", required=True)
        upstream = None
        if entry.has("upstream"):
            upstream = Upstream.objects.filter(name=entry.text("upstream", required=True)).first()
            if upstream is None:
                raise entry.error(
                    f"no upstream named {entry.data['upstream']!r} (list it in [[upstreams]])", "upstream"
                )
        hidden = entry.flag("hidden", False)
        mapping = ModelMapping.objects.filter(alias=alias).first() or ModelMapping(alias=alias)
        if mapping.pk is not None and alias in self.aliases_seen and mapping.hidden != hidden:
            raise entry.error(
                f"'hidden' differs from the alias's other [[models]] entries ({mapping.hidden})", "hidden"
            )
        self.aliases_seen.add(alias)
        self.save(entry, mapping, f"model {alias}", {"hidden": hidden})
        member = PoolMember.objects.filter(mapping=mapping, upstream=upstream).first()
        member = member or PoolMember(mapping=mapping, upstream=upstream)
        values = {
            "upstream_model": entry.text("model", required=True),
            "priority": entry.count("priority", minimum=0) or 0,
            "weight": entry.count("weight") or 1,
        }
        where = upstream.name if upstream else DEFAULT_UPSTREAM
        self.save(entry, member, f"model {alias} member {where}", values, {"upstream_model": "model"})
        return (alias, where)

    def drop_unlisted_members(self, listed: dict) -> None:
        """An alias's [[models]] entries are its whole pool: members the file does not list go."""
        for alias in {a for a, _ in listed}:
            for member in PoolMember.objects.filter(mapping__alias=alias).select_related("upstream"):
                where = member.upstream.name if member.upstream else DEFAULT_UPSTREAM
                if (alias, where) not in listed:
                    member.delete()
                    self.record("-", f"model {alias} member {where}", [])

    def price(self, entry: Entry) -> str:
        entry.check_fields(PRICE_FIELDS)
        model = entry.text("model", required=True)
        for field in ("input_per_million", "output_per_million"):
            if not entry.has(field):
                raise entry.error(f"{field!r} is required")
        values = {
            "input_per_million": entry.amount("input_per_million"),
            "output_per_million": entry.amount("output_per_million"),
            "cached_input_per_million": entry.amount("cached_input_per_million", default=Decimal("0.0000")),
        }
        row = ModelPrice.objects.filter(model=model).first() or ModelPrice(model=model)
        self.save(entry, row, f"price {model}", values)
        return model

    def find_user(self, entry: Entry, field: str, username: str):
        row = get_user_model().objects.filter(username=username).first()
        if row is None:
            raise entry.error(f"no user named {username!r} (list it in [[users]])", field)
        return row

    def find_key(self, entry: Entry, field: str, user_field: str | None = None) -> ApiKey:
        if user_field:
            username, name = entry.text(user_field, required=True), entry.text(field, required=True)
        else:
            username, _, name = entry.text(field, required=True).partition("/")
            if not name:
                raise entry.error(f"{field!r} must be 'USERNAME/KEY NAME' (got {entry.data[field]!r})", field)
        user = self.find_user(entry, user_field or field, username)
        key = ApiKey.objects.filter(user=user, name=name).first()
        if key is None:
            raise entry.error(
                f"{username} has no key named {name!r}: the config file never creates keys (they need a secret); "
                "issue it with `manage.py issue_token` first",
                field,
            )
        return key

    def key(self, entry: Entry) -> tuple[str, str]:
        entry.check_fields(KEY_FIELDS)
        key = self.find_key(entry, "name", "user")
        expires = entry.moment("expires_at")
        if expires and key.expires_at and key.expires_at.replace(microsecond=0) == expires:
            expires = key.expires_at  # the file holds whole seconds (export_config writes them so)
        values = {
            "allowed_models": entry.names("models") or [],
            "allowed_ips": entry.names("allowed_ips") or [],
            "expires_at": expires,
        }
        what = f"key {key.user.username}/{key.name}"
        diffs = self.assign(key, values)
        if diffs:
            try:
                key.full_clean(exclude=["user", "secret_hash", "prefix"])
            except ValidationError as exc:
                field, messages = next(iter(exc.message_dict.items()))
                raise entry.error(f"{field}: {' '.join(messages)}", field) from None
            services.update_key(key)
            self.record("~", what, diffs)
        revoked = entry.flag("revoked", False)
        if revoked and key.revoked_at is None:
            services.revoke_keys(ApiKey.objects.filter(pk=key.pk))
            self.record("~", what, ["revoked"])
        elif not revoked and key.revoked_at is not None:
            raise entry.error("this key is revoked and cannot be un-revoked; issue a new key", "revoked")
        return (key.user.username, key.name)

    def limit(self, entry: Entry) -> tuple:
        entry.check_fields(LIMIT_OWNERS | set(Limits.LIMIT_FIELDS))
        owners = [f for f in LIMIT_OWNERS if entry.has(f)]
        if len(owners) != 1:
            raise entry.error('give exactly one of user = "NAME", key = "USER/KEY NAME" or default = true')
        if owners == ["default"]:
            if entry.flag("default") is not True:
                raise entry.error("'default' can only be true", "default")
            target, what, identity = {"is_default": True}, "limits default", ("default",)
        elif owners == ["user"]:
            user = self.find_user(entry, "user", entry.text("user", required=True))
            target, what, identity = {"user": user}, f"limits user {user.username}", ("user", user.pk)
        else:
            key = self.find_key(entry, "key")
            target, what, identity = {"api_key": key}, f"limits key {key.user.username}/{key.name}", ("key", key.pk)
        values = {f: entry.count(f) for f in Limits.LIMIT_FIELDS if f != "budget_usd" and entry.has(f)}
        if entry.has("budget_usd"):
            values["budget_usd"] = entry.amount("budget_usd", positive=True)
        row = Limits.objects.filter(**target).first()
        old = {f: getattr(row, f) for f in Limits.LIMIT_FIELDS} if row else None
        new = {f: values.get(f) for f in Limits.LIMIT_FIELDS}
        if old == new:
            return identity
        try:
            services.set_limits(target, values, [f for f in Limits.LIMIT_FIELDS if f not in values])
        except ValidationError as exc:
            raise entry.error("; ".join(exc.messages)) from None
        if old is None:
            self.record("+", what, [f"{f}={show(v)}" for f, v in values.items()] or ["no limits (exempt)"])
        else:
            self.record("~", what, [f"{f} {show(old[f])} → {show(new[f])}" for f in new if old[f] != new[f]])
        return identity

    # --- pruning ------------------------------------------------------------------------------------

    def prune_section(self, name: str, kept: set) -> None:
        if name == "upstreams":
            for row in Upstream.objects.exclude(name__in=kept):
                users = PoolMember.objects.filter(upstream=row).values_list("mapping__alias", flat=True)
                if users:
                    raise ConfigError(f"--prune would delete upstream {row.name!r}, which models {list(users)} use")
                row.delete()
                self.record("-", f"upstream {row.name}", [])
        elif name == "models":
            for row in ModelMapping.objects.exclude(alias__in={alias for alias, _ in kept}):
                row.delete()
                self.record("-", f"model {row.alias}", [])
        elif name == "prices":
            for row in ModelPrice.objects.exclude(model__in=kept):
                row.delete()
                self.record("-", f"price {row.model}", [])
        elif name == "limits":
            rows = Limits.objects.select_related("user", "api_key__user")
            if "keys" not in self.present:
                rows = rows.filter(api_key__isnull=True)
            for row in rows:
                identity = (
                    ("default",)
                    if row.is_default
                    else ("user", row.user_id)
                    if row.user_id
                    else ("key", row.api_key_id)
                )
                if identity not in kept:
                    label = row.owner_label()
                    services.delete_limits(row)
                    self.record("-", f"limits {label}", [])
