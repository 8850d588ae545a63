"""The preview service: a PNG preview and a JPEG thumbnail for every archived science product.

Kernels are in :mod:`.steps`, reading product files in :mod:`.load`, composition in
:mod:`.pipeline`, the message handler in :mod:`.task`, the ``dms preview`` command in
:mod:`.commands`. See ``docs/preview.md``.
"""
