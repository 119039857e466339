-- Reconcile now: a new sendconnector.io/reconcile-requested-at value asks the operator to
-- compare with OVH at once; it echoes the value in status.lastHandledReconcileAt.
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["sendconnector.io/reconcile-requested-at"] = os.date("!%Y-%m-%dT%H:%M:%SZ")
return obj
