ldh [12]
jne #0x806, drop
ret #-1
drop: ret #0
