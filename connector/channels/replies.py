"""The outbound hook: send an agent's reply or a WhatsApp template within the rules.

`do_channel_reply` checks the platform's rule for the reply window (pure, `rules`) before
anything goes out, so a reply the platform would refuse is refused here with the same
error, and only then calls the platform (`send`). The engine calls it for each agent
message on a channel conversation (docs/channels.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from .files import OutboundFile
from .model import ChannelAccount, ChannelType, WhatsAppTemplate
from .rules import ReplyWindow, check_reply
from .send import MetaSendClient, SentMessage, ViberSendClient

__all__ = ["ChannelClients", "do_channel_reply"]


@dataclass(frozen=True)
class ChannelClients:
    meta: MetaSendClient
    viber: ViberSendClient

    @classmethod
    def for_urls(cls, *, meta_graph_url: str, viber_api_url: str) -> ChannelClients:
        return cls(MetaSendClient(meta_graph_url), ViberSendClient(viber_api_url))


def do_channel_reply(
    clients: ChannelClients,
    account: ChannelAccount,
    person_id: str,
    window: ReplyWindow,
    *,
    text: str | None = None,
    template: WhatsAppTemplate | None = None,
    file: OutboundFile | None = None,
    by_human: bool = True,
) -> SentMessage:
    """Send `text`, `file` (by link) or, on WhatsApp, `template` to the person, if the
    rules allow it now (a file is a free-form message, as a text).

    Raises:
        OutsideWindow, NotSubscribed: the rules refuse it; nothing was sent.
        ChannelError: the platform refused it or could not be reached.
        ValueError: not exactly one of `text`, `template` and `file`.
    """
    if [text, template, file].count(None) != 2:
        raise ValueError("send a text, a template or a file")
    tag = check_reply(account.channel, window, template=template is not None, by_human=by_human)
    if file is not None:
        if account.channel is ChannelType.VIBER:
            return clients.viber.send_file(account, person_id, file)
        return clients.meta.send_file(account, person_id, file, tag=tag)
    if account.channel is ChannelType.VIBER:
        assert text is not None
        return clients.viber.send_text(account, person_id, text)
    if account.channel is ChannelType.WHATSAPP:
        if template is not None:
            return clients.meta.send_whatsapp_template(account, person_id, template)
        assert text is not None
        return clients.meta.send_whatsapp_text(account, person_id, text)
    assert text is not None
    return clients.meta.send_text(account, person_id, text, tag=tag)
