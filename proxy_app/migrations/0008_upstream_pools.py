"""Upstream pools: an alias's target becomes its first PoolMember; per-upstream limits; attempts per usage row."""

import django.db.models.deletion
from django.db import migrations, models


def one_member_each(apps, schema_editor):
    """Every existing mapping keeps its one target, as its pool's only member."""
    ModelMapping = apps.get_model("proxy_app", "ModelMapping")
    PoolMember = apps.get_model("proxy_app", "PoolMember")
    PoolMember.objects.bulk_create(
        PoolMember(mapping_id=m.pk, upstream_id=m.upstream_id, upstream_model=m.upstream_model)
        for m in ModelMapping.objects.all()
    )


def all_members_back(apps, schema_editor):
    """Backwards: a mapping takes its first member's target (the others are lost with the table)."""
    ModelMapping = apps.get_model("proxy_app", "ModelMapping")
    for m in ModelMapping.objects.all():
        first = m.members.order_by("priority", "-weight", "id").first()
        if first is not None:
            m.upstream_id, m.upstream_model = first.upstream_id, first.upstream_model
            m.save(update_fields=["upstream", "upstream_model"])


class Migration(migrations.Migration):

    dependencies = [
        ('proxy_app', '0007_stored_response'),
    ]

    operations = [
        migrations.AddField(
            model_name='upstream',
            name='max_concurrent',
            field=models.PositiveIntegerField(blank=True, help_text="Most calls open at once on this upstream's key (empty: no cap).", null=True),
        ),
        migrations.AddField(
            model_name='upstream',
            name='rpm',
            field=models.PositiveIntegerField(blank=True, help_text="Calls per minute on this upstream's key.", null=True, verbose_name='requests per minute'),
        ),
        migrations.AddField(
            model_name='upstream',
            name='tpm',
            field=models.PositiveIntegerField(blank=True, help_text="Tokens per minute on this upstream's key.", null=True, verbose_name='tokens per minute'),
        ),
        migrations.AddField(
            model_name='usagerecord',
            name='attempts',
            field=models.PositiveSmallIntegerField(default=0, help_text='Upstream calls made for this request (more than one after failover; 0: none, or a row from before upstream pools).'),
        ),
        migrations.CreateModel(
            name='PoolMember',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('upstream_model', models.CharField(help_text='e.g. gemini-2.5-flash', max_length=200)),
                ('priority', models.PositiveSmallIntegerField(default=0, help_text='Lower is tried first.')),
                ('weight', models.PositiveSmallIntegerField(default=1, help_text='Share of traffic among equal priorities.')),
                ('mapping', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='members', to='proxy_app.modelmapping')),
                ('upstream', models.ForeignKey(blank=True, help_text='Empty means the default Gemini upstream (GEMINI_API_KEY).', null=True, on_delete=django.db.models.deletion.CASCADE, to='proxy_app.upstream')),
            ],
            options={
                'ordering': ['priority', '-weight', 'id'],
                'constraints': [models.UniqueConstraint(fields=('mapping', 'upstream'), name='pool_member_one_per_upstream'), models.UniqueConstraint(condition=models.Q(('upstream__isnull', True)), fields=('mapping',), name='pool_member_one_default')],
            },
        ),
        migrations.RunPython(one_member_each, all_members_back),
        migrations.RemoveField(
            model_name='modelmapping',
            name='upstream',
        ),
        migrations.RemoveField(
            model_name='modelmapping',
            name='upstream_model',
        ),
    ]
