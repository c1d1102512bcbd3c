U
