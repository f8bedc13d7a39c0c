"""The former home of the rules core, now ``assessor.domain``: a thin re-export only.

Kept for code written against ``assessor.rules`` while other work lands; import from
``assessor.domain`` instead. (To be deleted once nothing imports it.)
"""

from __future__ import annotations

from assessor.domain import *  # noqa: F403
from assessor.domain import __all__ as __all__
