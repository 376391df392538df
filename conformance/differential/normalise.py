"""Everything the differential tester normalises, in one place, with the reason for each rule.

A transcript line is compared only after `Normaliser.line` has rewritten it. Nothing else in the
tester hides a difference: what is not rewritten here is compared byte for byte.
"""

import re


class Normaliser:
    """Rewrites the parts of a transcript line that legitimately differ between two brokers (or
    two runs), keeping everything else. One instance per broker run, so that server-generated
    names are numbered in order of first appearance within that run."""

    # Server-named queues: `amq.gen-` followed by 22 random base64url characters in RabbitMQ
    # (Warren uses the same form). The random part differs on every declare, so each distinct
    # name is replaced by its order of appearance: `amq.gen-#1`, `amq.gen-#2`... Two brokers that
    # hand out names in the same order therefore compare equal, and a reply that names the wrong
    # generated queue still differs.
    GEN_NAME = re.compile(r"amq\.gen-[A-Za-z0-9_\-]+")

    # Direct reply-to addresses carry a random key (`amq.rabbitmq.reply-to.<key>`); the key is
    # a secret the broker makes up.
    REPLY_TO = re.compile(r"amq\.rabbitmq\.reply-to\.[A-Za-z0-9_.=+/\-]+")

    # Consumer tags the server generates when the client leaves the tag empty
    # (RabbitMQ `amq.ctag-<random>`); the tester names its consumers itself, but a broker may
    # still echo a generated one.
    CTAG = re.compile(r"amq\.ctag-[A-Za-z0-9_\-]+")

    def __init__(self, prefix):
        # Every entity the tester declares starts with a per-run prefix (so runs against a shared
        # broker cannot collide). Both brokers get the same prefix, but it is still replaced by
        # `P.` so that saved transcripts and allow-list patterns do not depend on the run.
        self.prefix = prefix
        self.gen = {}

    def _gen(self, m):
        return "amq.gen-#%d" % self.gen.setdefault(m.group(0), len(self.gen) + 1)

    def line(self, text):
        text = text.replace(self.prefix, "P.")
        text = self.GEN_NAME.sub(self._gen, text)
        text = self.REPLY_TO.sub("amq.rabbitmq.reply-to.<key>", text)
        text = self.CTAG.sub("amq.ctag-<random>", text)
        return text

    @staticmethod
    def headers(value):
        """Header values as the client decoded them. `x-death` entries carry a `time` (the
        moment the message died: wall clock, never equal between two runs) -> `<time>`.
        Every other header, including the rest of `x-death`, is kept."""
        if isinstance(value, dict):
            out = {}
            for k, v in value.items():
                if k == "time" and "reason" in value and "queue" in value:
                    out[k] = "<time>"
                else:
                    out[k] = Normaliser.headers(v)
            return out
        if isinstance(value, list):
            return [Normaliser.headers(v) for v in value]
        return value
