"""CRM Chat: live web chat that lives inside Dynamics 365 / Dataverse."""

# The one version of CRM Chat: the Python package's and the solution's (`crmchat solution
# pack` writes it into solution.xml). Four parts, as Dataverse solution versions have.
__version__ = "1.0.0.0"
