package apply

import clientgoscheme "k8s.io/client-go/kubernetes/scheme"

// scheme knows every built-in Kubernetes type, for filling in kinds.
var scheme = clientgoscheme.Scheme
