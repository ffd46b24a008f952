"""The embedded broker of ``make demo``: kombu's filesystem transport, made safe for a
worker, beat and web processes sharing one folder.

kombu writes a message file in place and its reader moves files without taking the
writer's lock, so a worker could read a half-written message and die on it
("Unrecoverable error: JSONDecodeError"). Here a message is written under a name the
reader ignores and renamed into place (atomic on one filesystem); a message that cannot
be decoded anyway is logged and skipped instead of stopping the worker.
"""

import logging
import os
import uuid
from time import monotonic

from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

logger = logging.getLogger(__name__)


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        # A leading dot: the reader only takes names of the form "<id>.<queue>.msg".
        partial = os.path.join(self.data_folder_out, f".partial-{uuid.uuid4()}")
        try:
            with open(partial, "wb") as file:
                file.write(str_to_bytes(dumps(payload)))
            os.replace(partial, os.path.join(self.data_folder_out, name))
        except OSError as exc:
            raise filesystem.ChannelError(f"Cannot add a message to {self.data_folder_out!r}") from exc

    def _get(self, queue):
        while True:
            try:
                return super()._get(queue)
            except ValueError as exc:  # the file is consumed already: skip to the next one
                logger.error("Skipped a broker message that is not valid JSON: %r", exc)


class Transport(filesystem.Transport):
    Channel = Channel
