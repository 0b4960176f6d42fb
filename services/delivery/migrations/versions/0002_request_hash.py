"""Orders remember a hash of the request that created them: an idempotency key reused with another
request is refused instead of answered with the first order."""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.add_column("delivery_order", sa.Column("request_hash", sa.Text))


def downgrade() -> None:
    op.drop_column("delivery_order", "request_hash")
