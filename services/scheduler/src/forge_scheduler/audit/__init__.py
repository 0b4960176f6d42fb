"""The audit trail's store: every service's entries from `forge.audit.events`, kept for the retention
period and served to tenant admins (MT-5)."""
