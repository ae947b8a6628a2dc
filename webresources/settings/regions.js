// The hosting regions and their service addresses, for pages running inside Dataverse
// (they cannot ask the service before they know where it is). Mirrors config/regions.json;
// tests/test_settings_page.py keeps the two equal.
window.CRMCHAT_REGIONS = {
  "centralus": "https://centralus.service.crmchat.cloud",
  "eastasia": "https://eastasia.service.crmchat.cloud",
  "westeurope": "https://westeurope.service.crmchat.cloud",
  "brazilsouth": "https://brazilsouth.service.crmchat.cloud"
};
