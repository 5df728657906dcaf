"""Send one SMS through Hermod's SMPP server with smpplib (pip install smpplib) and wait
for its delivery receipt. `hermod demo` writes the settings into demo.env:
SMPP_HOST, SMPP_PORT, SMPP_SYSTEM_ID, SMPP_PASSWORD and SMPP_SOURCE (a number the
account's tenant owns)."""

import os

import smpplib.client
import smpplib.consts
import smpplib.gsm

client = smpplib.client.Client(os.environ["SMPP_HOST"], int(os.environ["SMPP_PORT"]), timeout=30)
receipts = []
client.set_message_received_handler(lambda pdu: receipts.append(pdu))
client.connect()
client.bind_transceiver(system_id=os.environ["SMPP_SYSTEM_ID"], password=os.environ["SMPP_PASSWORD"])

parts, coding, esm_class = smpplib.gsm.make_parts("Your order 1001 has shipped")
for part in parts:
    sent = client.send_message(
        source_addr_ton=smpplib.consts.SMPP_TON_INTL,
        source_addr=os.environ["SMPP_SOURCE"],
        dest_addr_ton=smpplib.consts.SMPP_TON_INTL,
        destination_addr="447911123456",
        short_message=part,
        data_coding=coding,
        esm_class=esm_class,
        registered_delivery=True,
    )
while not receipts:
    client.read_once()  # submit_sm_resp (the message id), then the receipt (deliver_sm)
receipt = receipts[0]
print(receipt.receipted_message_id.decode(), receipt.short_message.decode().split(" stat:")[1].split()[0])
client.unbind()
client.disconnect()
