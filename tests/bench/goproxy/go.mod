module byollm.local/benchgo

go 1.22
