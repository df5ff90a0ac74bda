"""How tiles use the hardware they run on: threads inside a tile and the core budget
shared by the processes of one machine."""
