// The hosting regions, the presets the settings page offers for the service address (the
// environment variable crmchat_ServiceUrl). Only the settings page loads this: every page
// reads the address itself from the environment variable. Mirrors config/regions.json;
// tests/test_regions.py keeps the two equal.
window.CRMCHAT_REGIONS = [
  {"code": "centralus", "name": "Central US", "service_url": "https://centralus.service.crmchat.cloud"},
  {"code": "eastasia", "name": "East Asia", "service_url": "https://eastasia.service.crmchat.cloud"},
  {"code": "westeurope", "name": "West Europe", "service_url": "https://westeurope.service.crmchat.cloud"},
  {"code": "brazilsouth", "name": "Southern Brazil", "service_url": "https://brazilsouth.service.crmchat.cloud"}
];
