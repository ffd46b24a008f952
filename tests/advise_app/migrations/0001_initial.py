from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
    ]

    operations = [
        migrations.CreateModel(
            name='Order',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('customer_id', models.IntegerField()),
                ('status', models.CharField(max_length=16)),
                ('email', models.CharField(max_length=200)),
                ('reference', models.CharField(max_length=32, unique=True)),
                ('note', models.TextField()),
                ('created_at', models.DateTimeField()),
            ],
            options={
                'indexes': [models.Index(fields=['note'], name='advise_order_note_idx')],
            },
        ),
    ]
