"""Provider adapters: one pure module per telephony provider.

Each turns the provider's payloads into ``desk.events.CallEvent``s (``parse``) and, where the
provider asks the desk what to do, renders the answer in the provider's format. No Flask
request, app or database in here: the webhook views in ``desk.webhooks`` do the I/O.
"""
