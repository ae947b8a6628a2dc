"""CRM Chat's records in Dataverse: typed models, table names, and the writes the product makes."""
