"""Mean teacher (Tarvainen and Valpola 2017), the DCASE 2019 task 4 baseline's semi-supervised
method."""
