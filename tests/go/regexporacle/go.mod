module rotator/tests/regexporacle

go 1.21
