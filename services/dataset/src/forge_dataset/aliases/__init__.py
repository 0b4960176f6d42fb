"""Dataset aliases (DS-2): `latest`, moved by every publish, and names of the users' own; moving one back
to an older version is a rollback, audited like every change."""
