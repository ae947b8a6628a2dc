"""CRM Chat: live web chat that lives inside Dynamics 365 / Dataverse."""
