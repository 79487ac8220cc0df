"""The Imply Polaris Jobs v1 API, typed: the client, its answers' models and its errors."""
