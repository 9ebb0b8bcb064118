"""The channels through which customers reach the company; each channel has its own Kafka topic."""

from enum import StrEnum


class Channel(StrEnum):
    """A customer-contact channel. The value is the CloudEvents ``channel`` extension and the topic suffix."""

    MAIL = "mail"            # letters sent, returned mail
    PHONE = "phone"          # contact-centre calls
    EMAIL = "email"
    WEBCHAT = "webchat"
    WHATSAPP = "whatsapp"
    TWITTER = "twitter"      # Twitter/X webcare
    FACEBOOK = "facebook"    # Facebook webcare
    STORE = "store"          # visits to a shop or branch
    WEB = "web"              # website and self-service portals
    SURVEY = "survey"        # feedback surveys (NPS, CES, CSAT)
    PARTNER = "partner"      # intermediaries acting for the customer, e.g. a travel agency
