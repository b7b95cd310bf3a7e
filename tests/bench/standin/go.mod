module rotator/tests/standin

go 1.21
