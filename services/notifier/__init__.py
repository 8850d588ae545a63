"""Notifier: archive events -> subscriptions -> deliveries (webhook, e-mail, digests).

``task.HANDLERS`` (``notifier.match``) turns each DMS event into deliveries;
``scheduler`` announces releases and sends digests and retries (``dms notify``);
``commands.register_commands`` adds the ``dms`` sub-commands. See docs/notifications.md.
"""
