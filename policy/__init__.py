"""The CrossGuard policy pack of the platform (run with `pulumi preview --policy-pack policy`)."""
