"""Feature extractors for the metrics, one module each:

* :mod:`.inception` – Inception-v3 of torch-fidelity (the papers' FID/IS), weights read safely;
* :mod:`.domain`    – the offline ``domain`` classifier, trained on the real train split, cached;
* :mod:`.lpips_net` – LPIPS-alex (or a clearly labelled random backbone when offline);
* :mod:`.extract`   – the :class:`~.extract.Extractor` interface and ONE batched feature pass;
* :mod:`.weights`   – ``torch.load(weights_only=True)`` with errors a user can act on.

Nothing is imported here, so that ``mgbench.cache`` can use :mod:`.weights` without a cycle.
"""
