package rollingrestart

import (
	"net/http"
	"time"
)

func netHTTPClient() *http.Client { return &http.Client{Timeout: 2 * time.Second} }
