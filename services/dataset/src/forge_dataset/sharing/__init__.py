"""Sharing datasets with other tenants (DS-5): grants of a whole dataset or of one published version, for
reading or also deriving, limited by the secrecy rule of `forge_kit.secrecy` and the clearance platform
admins give tenants; revoking a grant stops the grantee's next read."""
