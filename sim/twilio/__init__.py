"""Twilio emulator: REST API, the phone network (ringing, AMD, callbacks, recording) and Media Streams.

    net = PhoneNetwork(speed=20, accounts={"AC...": "token"}, scenarios=default_registry())
    app = create_app(net)            # serve with sim.server.serve(app)
    client = Client("AC...", "token"); client.api.base_url = base_url
"""

from sim.twilio.calllog import CallLog
from sim.twilio.network import Call, CallParams, PhoneNetwork, Recording
from sim.twilio.rest import create_app

__all__ = ["Call", "CallLog", "CallParams", "PhoneNetwork", "Recording", "create_app"]
