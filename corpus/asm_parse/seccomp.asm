ld [4]
jne #0xc000003e, bad
ld [0]
jeq #15, good
bad: ret #0
good: ret #0x7fff0000
