"""Fill the catalogue with the seed products, so a fresh database has something to sell."""

from django.apps.registry import Apps
from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor

from demo_app.catalogue import seed_products


def seed(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    product = apps.get_model("orders", "Product")
    product.objects.bulk_create(product(**row) for row in seed_products())


class Migration(migrations.Migration):
    dependencies = [("orders", "0001_initial")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
